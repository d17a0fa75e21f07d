"""The Python twin of the board's C core: the protocol (labels, sensors, rate, window), the streaming
front end, smoothing and the metrics of predictions."""

"""Running a bundle's model: the runtimes (Keras, LiteRT, TFLite Micro, the C engine on the host), the
simulator that replays recordings as the board would, and the parity check."""

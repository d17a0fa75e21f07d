"""The phone as sensor and screen: the web export of a bundle (the board's C in WebAssembly, a page, an ES
module) and ``harlite serve``, which serves it over HTTPS and takes the phone's recordings into a dataset."""

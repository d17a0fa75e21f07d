"""The board: its portable C sources (package data), the cross compilers and QEMU that build and measure
them, and the firmware's figures."""

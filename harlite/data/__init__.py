"""Where recordings come from: the CSV format, the embedded HAPT default, the official UCI HAR set."""

"""A simulated Android phone (and a real one over adb) as an AndroidWorld-style agent environment."""

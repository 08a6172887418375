"""What the API and the workers both need: settings, stores, the task contract, safe image I/O."""

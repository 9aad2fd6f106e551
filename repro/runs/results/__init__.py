"""What a finished run is: its result, its manifest, their verification, which runs are replicates."""

"""The software stack this project runs on: the hash-pinned locks (`lockfile`), the installed
environment checked against them and frozen into each run's manifest (`environment`), the
installed files checked against their RECORD (`installed_files`), and the stack's components
at a glance (`components`, `repro env show`)."""

"""The farm's own state in the farm's database (the one Buildbot uses), shared by every
master of a cluster: campaign records and status rows (`db.py`), and the status
records every master reads its pages from (`status.py`)."""

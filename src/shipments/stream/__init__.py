"""The status stream: the job (``job``), what one micro-batch does (``sink``), the event-time
watermark kept beside the checkpoint (``watermarks``), progress metrics and the status lookup."""

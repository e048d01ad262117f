"""``google.colab.files``: no browser to download to or upload from while grading."""
from __future__ import annotations

from google.colab._note import note


def download(filename: str) -> None:
    """Leave ``filename`` where the notebook wrote it (the work folder): nothing is sent anywhere."""
    note(f"files.download({filename!r}) does nothing while grading: the file stays where it is")


def upload(target_dir: str = "") -> dict[str, bytes]:
    """No file can be uploaded while grading: returns no file (hand the files in with your notebook)."""
    note("files.upload() gets no file while grading: hand the files in with your notebook and read them "
         "from its folder")
    return {}

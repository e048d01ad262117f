"""A stand-in for Colab's ``google.colab``, so that notebooks written on Colab run in the grader's sandbox.

The grader's sandbox puts ``grader/sandbox_site`` on ``PYTHONPATH``. ``google`` has no
``__init__.py`` here: it is a namespace package, and merges with protobuf's ``google``
where the course environment has protobuf. What Colab does with the network or a browser
(mounting Google Drive, downloads, uploads, authentication) becomes what the sandbox
offers instead: the Drive is the instructor's folders mounted at
``/content/drive/MyDrive``, a download stays in the work folder, and the rest prints a
note and does nothing.
"""
from google.colab import auth, drive, files, output

__all__ = ["auth", "drive", "files", "output"]

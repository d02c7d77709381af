"""The wall between the judge and the code under check.

Judge side: `process` (the worker process, its channel and limits). Worker side: `impl`
(loading a file or module), `detect` (which layers it defines). The judge reaches the
code only through `process.Worker`.
"""

"""Runware: a thin typed client for its REST API (contract: shared/reference/runware-api.md).

- `transport`: the one seam where every POST and GET goes, with retries and the translation of failures.
- `client`: `RunwareClient`, the task protocol: submit without double billing, poll, find a task after a restart,
  upload references, download results, check the key.
- `models`: typed request and result models; costs become integer micro-dollars here, once.
- `errors`: one exception tree for everything Runware can answer or fail with.
"""

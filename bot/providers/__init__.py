"""The image providers behind one interface: the worker runs a job on the provider stored with it.

- `base`: `Provider`, the protocol every provider implements (produce a queued job's images, resume a submitted
  one without paying twice, download a result), and `Providers`, the configured ones by name.
- `runware`: `RunwareProvider`: Runware's task UUID chosen and stored before the POST, a probe before any resubmit,
  the cost reported per image.
- `runbase`: `RunbaseProvider`: one run per image, each stored before its create; a create whose answer was lost is
  never sent again (charged at the estimate's share); runs with ids polled after a restart.
"""

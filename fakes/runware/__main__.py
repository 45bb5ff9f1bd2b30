"""`python -m fakes.runware`: serve the fake Runware standalone (see `fakes.runware.standalone`)."""

from fakes.runware.standalone import main

raise SystemExit(main())

from lems.cli import main

raise SystemExit(main())

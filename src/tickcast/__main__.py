from tickcast.cli.main import main

raise SystemExit(main())

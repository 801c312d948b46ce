from atdata_core.cli import main

main()

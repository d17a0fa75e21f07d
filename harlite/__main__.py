from harlite.cli import main

main()

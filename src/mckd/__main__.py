from mckd.cli import main

main()

from picost.cli import main

main()

from picost.cli.main import main

main()

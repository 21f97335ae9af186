from aerec_cli.cli.commands import main

main()

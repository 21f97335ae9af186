from aerec_cli.cli import main

main()

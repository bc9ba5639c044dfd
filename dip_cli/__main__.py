from dip_cli.cli import main

main()

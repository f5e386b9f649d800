from ncaas_dev.cli.app import main

main()

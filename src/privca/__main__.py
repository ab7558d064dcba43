from privca.cli.main import main

main()

from bankops.terminal.cli import main

main()

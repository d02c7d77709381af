from cnncheck.cli import main

main()

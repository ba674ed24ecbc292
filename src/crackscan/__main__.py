from crackscan.cli import main

main()

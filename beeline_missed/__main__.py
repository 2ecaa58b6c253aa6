from beeline_missed.cli import main

main()

from bench.monitoring.run import main

main()

"""The stand-in's own modules: command line, settings, simulated start, HTTP server, log lines."""

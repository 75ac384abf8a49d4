# seed_suite/ is a user's test suite that the tests here copy and run as a subprocess.
collect_ignore = ["seed_suite"]

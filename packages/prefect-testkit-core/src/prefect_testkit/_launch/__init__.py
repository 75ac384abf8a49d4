"""Starting and supervising the server child from the test process: the server factory
(a pre-imported daemon that forks servers) and its wire protocol, spawning, health,
stopping, and the tombstone that answers for a dead server."""

"""Stage 6, running the master: several masters on one database, mail to worker
owners, retention of old builds and logs, and the indexes a long history needs."""

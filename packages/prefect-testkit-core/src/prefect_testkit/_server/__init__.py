"""What runs in the server child: the app around Prefect's API, and the harness's routes.

Kept free of imports: the child registers its stack-dump handler before anything heavy.
"""

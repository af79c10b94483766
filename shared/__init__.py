"""Code shared by the api, worker and ui processes. Nothing here imports from them."""

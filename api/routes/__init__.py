"""One APIRouter per resource."""

# Where the versioned routes live; each route module knows only its own prefix below it.
API_PREFIX = "/api/v1"

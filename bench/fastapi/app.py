"""The seed's own stack, for `make bench-http`: GET /api/v1/me the way the
original plan builds it (seeds/000, Task 1): FastAPI, a `get_current_user`
dependency reading the bearer token, PyJWT's `PyJWKClient` (JWKS fetched
once and cached) and `jwt.decode` checking signature, exp, audience and
issuer. It answers the same JSON as GymBro's /me, so wrk drives both with
one token. The handlers are `async def`: the check is CPU work of well
under a millisecond, and FastAPI runs plain `def` ones in a thread pool,
which made this stack less than half as fast here (1.0k against 2.4k
requests/s). It is a yardstick, not a part of the service.

    GYMBRO_ISSUER=http://127.0.0.1:8080/auth/v1 \
        python3 -m uvicorn app:app --app-dir bench/fastapi --port 8090 --loop uvloop

Debian 12 ships exactly the versions the figures name: python3-fastapi
(0.92), python3-jwt (2.6), python3-uvicorn (0.17) and python3-uvloop (0.17).
"""

import datetime
import os

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ISSUER = os.environ["GYMBRO_ISSUER"].rstrip("/")
jwks = jwt.PyJWKClient(ISSUER + "/.well-known/jwks.json", cache_keys=True)
bearer = HTTPBearer(auto_error=False)
app = FastAPI()


async def get_current_user(creds: HTTPAuthorizationCredentials = Depends(bearer)) -> dict:
    if creds is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        key = jwks.get_signing_key_from_jwt(creds.credentials)
        return jwt.decode(creds.credentials, key.key, algorithms=["ES256", "RS256"],
                          audience="authenticated", issuer=ISSUER)
    except jwt.PyJWTError as e:
        raise HTTPException(401, str(e), headers={"WWW-Authenticate": "Bearer"})


@app.get("/api/v1/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.get("/api/v1/me")
async def me(claims: dict = Depends(get_current_user)) -> dict:
    return {
        "uid": claims["sub"],
        "email": claims.get("email"),
        "provider": "supabase",
        "issuer": claims["iss"],
        "session_id": claims.get("session_id"),
        "role": claims.get("role"),
        "expires_at": datetime.datetime.fromtimestamp(claims["exp"], datetime.timezone.utc).isoformat(),
        "claims": claims,
    }

"""The OpenAPI 3.1 document, generated from the route table so it cannot drift from what is served."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from server import keys
from server.api.routes import PATH_PATTERNS, Route
from server.api.schemas import ErrorOut

REF = "#/components/schemas/{model}"
_ERROR_STATUSES = {
    "400": "Malformed JSON", "401": "Not signed in, or the session is invalid", "403": "Not allowed",
    "404": "No such thing (or not visible to you)", "409": "Conflicts with the current state",
    "413": "Body too large", "422": "Invalid fields (details list each)", "429": "Rate limited (Retry-After)",
}


def build_document(routes: Sequence[Route], version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel], mode: str) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=REF, mode="validation" if mode == "in" else "serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}

    ref(ErrorOut, "out")
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "operationId": f"{route.tag}.{route.handler.__name__}",
            "summary": route.summary,
            "tags": [route.tag],
            "responses": _responses(route, ref),
        }
        parameters = [{"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
                      for name in _path_params(route.path)]
        if route.query is not None:
            query_schema = route.query.model_json_schema(ref_template=REF)
            schemas.update(query_schema.pop("$defs", {}))
            properties = query_schema["properties"]
            for name, field in route.query.model_fields.items():
                parameters.append({"name": name, "in": "query", "required": field.is_required(),
                                   "description": field.description or "", "schema": properties[name]})
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            body_schema = {"schema": ref(route.body, "in")}
            operation["requestBody"] = {"required": True, "content": {"application/json": body_schema}}
        if route.auth == "user":
            operation["security"] = [{"bearer": []}, {"cookie": []}]
        elif route.auth == "optional":
            operation["security"] = [{}, {"bearer": []}, {"cookie": []}]
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Quanzi", "version": version,
                 "description": "Live classes and the circles around them. Cookie sessions must send "
                                "X-CSRF-Token on POST, PUT, PATCH and DELETE."},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "quanzi_session"},
            },
        },
    }


def _responses(route: Route, ref: Any) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "OK"}
    if route.response is not None:
        success["content"] = {route.content_type: {"schema": ref(route.response, "out")}}
    elif route.content_type != "application/json":
        success["content"] = {route.content_type: {"schema": {"type": "string"}}}
    responses = {str(route.status): success}
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorOut")}}}}
    for status, description in _ERROR_STATUSES.items():
        responses[status] = {"description": description, **error}
    return responses


def _path_schema(name: str) -> dict[str, Any]:
    pattern = PATH_PATTERNS.get(name)
    return {"type": "string", "pattern": f"^{pattern}$"} if pattern else {"type": "integer", "minimum": 1}


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[keys.OPENAPI])


ROUTES = [
    Route("GET", "/api/openapi.json", openapi, "This document", "meta", auth="public"),
]

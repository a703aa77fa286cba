# Copyright 2026 The gradiend-hf contributors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The Hub's collection endpoints for [`tests.hub_server.LocalHub`], as `huggingface_hub` 2.x calls them.

* `POST /api/collections`: create (`title`, `namespace`, `private`, `description`); a second collection with the same
  title in the same namespace answers 409 with the existing `slug`, as the Hub does (`create_collection(...,
  exists_ok=True)` then fetches it);
* `GET /api/collections?owner=...&item=...`: list (items truncated to four, as on the Hub);
* `GET /api/collections/{namespace}/{slug}`: one collection with all its items;
* `POST /api/collections/{namespace}/{slug}/items`: add `{"item": {"id", "type"}, "note"}`; 409 when the item is
  already there; the item's repo must exist.

A collection is JSON in memory, in the shape `huggingface_hub.Collection` reads (`slug`, `title`, `owner`, `items`
with `_id`, `id`, `type`, `position` and `note` as `{"text", "html"}`, `lastUpdated`, `position`, `private`,
`theme`, `upvotes`, `description`).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any


ITEM_TYPES = {"model": "model", "dataset": "dataset", "space": "space"}


class CollectionRoutes:
    """Mixin of the request handler: the `/api/collections` routes.

    Uses the handler's `hub.collections` (a dict by slug), `_send`, `_read_json`, `_require_write`, `_repo` and
    `_http_error` (the server's error to raise, so this module need not import the server).
    """

    def _route_collections(self, method: str, rest: list[str]) -> None:
        if not rest and method == "POST":
            return self._create_collection()
        if not rest and method == "GET":
            return self._list_collections()
        if len(rest) == 2 and method == "GET":
            return self._send(200, self._collection("/".join(rest)))
        if len(rest) == 3 and rest[2] == "items" and method == "POST":
            return self._add_collection_item("/".join(rest[:2]))
        return self._unhandled(method)

    def _collection(self, slug: str) -> dict[str, Any]:
        collection = self.hub.collections.get(slug)
        if collection is None or (collection["private"] and not self._is_authorized()):
            raise self._http_error(404, f"Collection {slug} not found")
        return collection

    def _create_collection(self) -> None:
        self._require_write()
        payload = self._read_json()
        title, namespace = payload.get("title"), payload.get("namespace") or self.hub.user
        if not title:
            raise self._http_error(400, "A collection needs a title")
        description = payload.get("description")
        if description is not None and len(description) > 150:
            raise self._http_error(400, "The description of a collection is at most 150 characters")
        with self.hub._lock:
            for slug, existing in self.hub.collections.items():
                if existing["owner"]["name"] == namespace and existing["title"] == title:
                    raise self._http_error(409, "Collection already exists", slug=slug)
            name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "collection"
            slug = f"{namespace}/{name}-{uuid.uuid4().hex[:24]}"
            collection = {
                "slug": slug,
                "title": title,
                "description": description,
                "owner": {"name": namespace, "type": "user", "fullname": namespace},
                "items": [],
                "lastUpdated": _now(),
                "position": sum(c["owner"]["name"] == namespace for c in self.hub.collections.values()),
                "private": bool(payload.get("private")),
                "theme": "blue",
                "upvotes": 0,
            }
            self.hub.collections[slug] = collection
        self._send(200, collection)

    def _list_collections(self) -> None:
        owner, item = self.query.get("owner"), self.query.get("item")
        found = []
        for collection in self.hub.collections.values():
            if collection["private"] and not self._is_authorized():
                continue
            if owner and collection["owner"]["name"] != owner:
                continue
            if item and not any(f"{i['type']}s/{i['id']}" == item for i in collection["items"]):
                continue
            # The listing has no `position` of its own: the client numbers the collections it reads.
            listed = {key: value for key, value in collection.items() if key != "position"}
            found.append({**listed, "items": collection["items"][:4]})
        self._send(200, found)

    def _add_collection_item(self, slug: str) -> None:
        self._require_write()
        payload = self._read_json()
        item = payload.get("item") or {}
        item_id, item_type = item.get("id"), item.get("type")
        if item_type not in ITEM_TYPES or not item_id:
            raise self._http_error(
                400, f"Invalid item {item!r}: it needs an `id` and a `type` of {sorted(ITEM_TYPES)}"
            )
        with self.hub._lock:
            collection = self._collection(slug)
            self._repo(ITEM_TYPES[item_type], item_id)  # 404 when the repo does not exist
            if any(i["id"] == item_id and i["type"] == item_type for i in collection["items"]):
                raise self._http_error(409, f"{item_id} is already in the collection")
            note = payload.get("note")
            collection["items"].append(
                {
                    "_id": uuid.uuid4().hex[:24],
                    "id": item_id,
                    "type": item_type,
                    "position": len(collection["items"]),
                    **({"note": {"text": note, "html": note}} if note else {}),
                }
            )
            collection["lastUpdated"] = _now()
        self._send(200, collection)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

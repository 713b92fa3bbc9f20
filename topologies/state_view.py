"""A view of node state, for people and tools: `GET /state/users/{user_id}`.

The state lives in the RocksDB store of the worker that owns the user's partition, so any other
worker forwards the request there (Faust's `topic_route`). Unlike Faust's built-in table views,
it answers only the user's own bearer token.
"""

from __future__ import annotations

import time
from typing import Any, cast

from faust.web import Request, Response, View

from streams.app import app, settings
from streams.graph.follower_graph import FollowerGraph
from streams.graph.tweet_store import TweetStore
from streams.http.rules import HttpError, authorize, error_body, parse_id
from streams.state.node_state import node_state_named
from topologies.topics import ROUTES

RECENT_TWEETS = 20
# The graph and the tweet store live in the fanout node's stores, keyed as its content route.
FANOUT = "fanout"
(by_author, _) = ROUTES["content_events"][0]


def _refuse(view: View, err: HttpError) -> Response:
    return view.json(error_body(err), status=err.status, headers=dict(err.headers))


async def user_state(view: View, request: Request, user_id: str) -> Response:
    """The owner's answer: the user's graph counts, follows and newest tweets from RocksDB."""
    user = parse_id(user_id)
    who = authorize(request.headers.get("Authorization"), user, settings.secrets, time.time())
    if isinstance(who, HttpError):
        return _refuse(view, who)
    if user is None:
        return _refuse(view, HttpError(400, "user_id must be a positive integer"))
    tp = app.producer.key_partition(by_author.get_topic_name(), user_id.encode())
    store = node_state_named(FANOUT).opened(tp)
    if store is None:
        return _refuse(
            view, HttpError(503, f"partition {tp.partition} is not open yet", (("Retry-After", "1"),))
        )
    graph = FollowerGraph(store)
    recent = TweetStore(store, settings.timeline_max).recent(user, RECENT_TWEETS)
    return view.json(
        {
            "user_id": user,
            "partition": tp.partition,
            "served_by": settings.canonical_url,
            "features": graph.social_features(user),
            "following": sorted(graph.following(user)),
            "recent_tweets": [str(t) for t in recent],
        }
    )


@app.page("/state/users/{user_id}")
class UserState(View):
    # Faust types routed handlers as taking the base View; ours is a plain function of one.
    get = app.topic_route(topic=by_author, match_info="user_id")(cast(Any, user_state))

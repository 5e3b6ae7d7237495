"""Where pages may send the browser: safe `next` targets and same-origin form posts."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from stellarstack.panel.web.urls import safe_next, same_origin, signin_url


def make_request(
    path: str = "/",
    query: str = "",
    headers: dict[str, str] | None = None,
    public_url: str | None = None,
) -> Request:
    app = FastAPI()
    app.state.settings = type("S", (), {"public_url": public_url})()
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": path,
            "query_string": query.encode(),
            "headers": raw,
            "scheme": "http",
            "server": ("panel.test", 80),
            "app": app,
        }
    )


@pytest.mark.parametrize(
    "target", ["/dashboard", "/servers/abc/console", "/servers?page=2&sort=name", "/"]
)
def test_same_site_paths_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "///evil.example",
        "https://evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        " /dashboard",
        "/dash board",
        "/caf\u00e9",
        "/" + "a" * 5000,
        "",
        None,
        "dashboard",
    ],
)
def test_other_sites_and_odd_spellings_fall_back(target: str | None) -> None:
    assert safe_next(target) == "/dashboard"


def test_sign_in_detour_points_back_at_the_page() -> None:
    url = signin_url(make_request("/servers/abc/files", "dir=%2Fworld"))
    assert url == "/auth/signin?next=%2Fservers%2Fabc%2Ffiles%3Fdir%3D%252Fworld"


def test_sign_in_detour_never_carries_an_unsafe_next() -> None:
    assert signin_url(make_request("//evil.example")) == "/auth/signin"


def test_forms_from_this_site_are_accepted() -> None:
    assert same_origin(make_request(headers={"host": "panel.test", "origin": "http://panel.test"}))
    assert same_origin(make_request(headers={"host": "panel.test"}))  # no Origin: not a browser


def test_forms_from_the_public_url_are_accepted_behind_a_proxy() -> None:
    request = make_request(
        headers={"host": "10.0.0.5:8080", "origin": "https://panel.example.com"},
        public_url="https://panel.example.com",
    )
    assert same_origin(request)


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://panel.test.evil.example", "file://"]
)
def test_forms_from_other_sites_are_refused(origin: str) -> None:
    assert not same_origin(make_request(headers={"host": "panel.test", "origin": origin}))

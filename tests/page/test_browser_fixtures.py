"""The page tests share tabs (tests/page/conftest.py, Tab.reset): a reset tab must hold nothing
of the test before, or one test could pass or fail because of another."""

from tests.page.conftest import VIEWPORT, Tab

STATE = """async () => [
    sessionStorage.length, localStorage.length, document.cookie,
    (await navigator.permissions.query({name: "notifications"})).state,
    (await indexedDB.databases()).length, (await caches.keys()).length,
]"""
STORE = """async () => {
    sessionStorage.setItem("token", "t"); localStorage.setItem("token", "t");
    document.cookie = "token=t";
    await new Promise((done) => { const open = indexedDB.open("db"); open.onsuccess = () => { open.result.close(); done(); }; });
    await (await caches.open("cache")).put("/x", new Response("x"));
}"""


def test_a_reset_tab_keeps_nothing_of_the_test_before(browser, stack):
    tab = Tab(browser, viewport=VIEWPORT)
    try:
        page = tab.page
        # Pages of the app's origin and of the sign-in page's, each with something in every store.
        urls = [stack.host.url + "/api/health", stack.panoptes.url + "/"]
        for url in urls:
            page.goto(url)
            page.evaluate(STORE)
        never_asked = page.evaluate(STATE)[3]  # the permission nobody granted on the sign-in origin
        tab.context.grant_permissions(["notifications"], origin=stack.host.url)
        page.route("**/api/health", lambda route: route.fulfill(status=418, body="routed"))
        page.set_viewport_size({"width": 320, "height": 500})
        assert page.goto(urls[0]).status == 418
        assert page.evaluate(STATE) == [1, 1, "token=t; token=t", "granted", 1, 1]  # a cookie a path

        tab.reset()

        assert page.url == "about:blank" and tab.context.cookies() == []
        assert page.viewport_size == VIEWPORT
        for url in urls:
            assert page.goto(url).status != 418, url  # the route is gone
            assert page.evaluate(STATE) == [0, 0, "", never_asked, 0, 0], url
    finally:
        tab.close()

"""Entry point the Functions host indexes (Python v2 programming model)."""

import azure.functions as func

from exports.blueprint import bp as exports_blueprint
from page.blueprint import bp as page_blueprint

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(exports_blueprint)
app.register_functions(page_blueprint)  # with the site's catch-all, whose name sorts last

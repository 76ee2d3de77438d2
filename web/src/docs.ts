// The /docs page: Swagger UI over the service's own OpenAPI document, as
// FastAPI's /docs is, but with Swagger UI built into the console (the npm
// package swagger-ui-dist) instead of loaded from a CDN, so it works offline
// and under a Content-Security-Policy that allows only this origin.
import SwaggerUIBundle from 'swagger-ui-dist/swagger-ui-es-bundle.js'
import 'swagger-ui-dist/swagger-ui.css'

SwaggerUIBundle({ url: '/api/v1/openapi.json', dom_id: '#ui', deepLinking: true })

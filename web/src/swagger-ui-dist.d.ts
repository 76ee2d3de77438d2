// swagger-ui-dist ships no types; this is the one call /docs makes.
declare module 'swagger-ui-dist/swagger-ui-es-bundle.js' {
  const SwaggerUIBundle: (options: { url: string; dom_id: string; deepLinking?: boolean }) => unknown
  export default SwaggerUIBundle
}

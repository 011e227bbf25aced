// The API reference page of `make run` (/docs/): Swagger UI, vendored at
// build time into build/apidocs/swagger-ui (t/apidocs-vendor), over the
// API's OpenAPI document.  The document comes from the module at
// /api/v1/openapi.json when it serves it, else from this page's copy of
// conf/openapi.json (/docs/openapi.json).  Nothing is loaded from another
// origin (the location's Content-Security-Policy says so too).
(function () {
    'use strict';

    var root = document.getElementById('swagger-ui');

    function note(text) {
        var p = document.createElement('p'), a = document.createElement('a');
        p.className = 'apidocs-note';
        p.appendChild(document.createTextNode(text + ' The document itself: '));
        a.href = 'openapi.json';
        a.textContent = 'openapi.json';
        p.appendChild(a);
        root.appendChild(p);
    }

    if (typeof window.SwaggerUIBundle !== 'function') {
        note('The API reference page is unavailable: its renderer (Swagger UI)'
             + ' was not vendored. Run make apidocs (it needs the npm'
             + ' registry), then reload.');
        return;
    }

    function load(url) {
        return fetch(url, { headers: { Accept: 'application/json' } })
            .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
            .then(function (doc) {
                return (doc && typeof doc.openapi === 'string') ? doc
                                                                 : Promise.reject('not OpenAPI');
            });
    }

    load('/api/v1/openapi.json')
        .catch(function () { return load('openapi.json'); })
        .then(function (spec) {
            window.ui = window.SwaggerUIBundle({
                spec: spec,
                dom_id: '#swagger-ui',
                deepLinking: true,
                validatorUrl: null,
                defaultModelsExpandDepth: 0,
                docExpansion: 'list',
                tryItOutEnabled: false
            });
        })
        .catch(function (e) {
            note('The OpenAPI document could not be loaded (' + e + ').');
        });
}());

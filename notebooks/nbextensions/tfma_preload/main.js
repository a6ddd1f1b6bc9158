// Loads TFMA's web components (vulcanized_tfma.js) once, before any TFMA widget renders.
//
// TFMA's widget injects that bundle with a <script src> tag on first render. The bundle
// holds UMD libraries (d3, d3-tip, ...) that call an anonymous define() when they see
// RequireJS, which the classic notebook uses: RequireJS then throws "Mismatched anonymous
// define() module" inside the next widget's creation, and that view never appears. Here the
// bundle runs as an inline script with define.amd hidden for exactly that synchronous
// evaluation, so its libraries take their browser-global path; a placeholder tag with the
// same src (of a type the browser never runs) tells TFMA's loader the bundle is present.
define(["base/js/utils"], function (utils) {
  "use strict";

  function load_ipython_extension() {
    var src = utils.get_body_data("baseUrl") + "nbextensions/tensorflow_model_analysis/vulcanized_tfma.js";
    if (document.querySelector('script[src="' + src + '"]')) {
      return; // already loaded (or TFMA's own loader got there first)
    }
    var marker = document.createElement("script");
    marker.type = "text/x-tfma-preloaded";
    marker.setAttribute("src", src);
    document.head.appendChild(marker);
    return fetch(src)
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status + " for " + src);
        }
        return response.text();
      })
      .then(function (code) {
        var amd = window.define.amd;
        window.define.amd = undefined;
        try {
          var script = document.createElement("script");
          script.textContent = code;
          document.head.appendChild(script); // runs synchronously
        } finally {
          window.define.amd = amd;
        }
        console.info("tfma_preload: TFMA web components loaded");
      })
      .catch(function (error) {
        marker.remove(); // let TFMA's own loader try
        console.error("tfma_preload: could not load " + src, error);
      });
  }

  return { load_ipython_extension: load_ipython_extension };
});

"""The one page `python -m pipeline serve` shows: drop a photo, see what the neuron saw and why it decided.

Self-contained (inline style and script, images as data: URIs, nothing loaded from elsewhere). Every way in
(the file input, a drop, the demo of /?demo=1) goes through the same send(); the threshold slider relabels
the last result, and the heading that asks why, without a new request. /?threshold=T sets the slider at load.
The regions that weigh most are drawn as numbered boxes on the contribution map and listed under the same
numbers.
"""

PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>catneuron: why did it say cat or non-cat?</title>
<style>
body { font-family: sans-serif; max-width: 1000px; margin: 1.5em auto; padding: 0 1em; color: #111; }
#drop { border: 2px dashed #888; border-radius: 8px; padding: 1.5em; text-align: center; background: #fafafa; }
#drop.over { background: #eef4fb; border-color: #2166ac; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; margin-top: 1em; }
figure { margin: 0; } figcaption { font-size: 0.85em; max-width: 256px; }
img.pixels { width: 256px; height: 256px; image-rendering: pixelated; border: 1px solid #999; }
.map { position: relative; width: 258px; height: 258px; }
#overlay { position: absolute; top: 1px; left: 1px; width: 256px; height: 256px; }  /* the image inside its border */
.box { position: absolute; box-sizing: border-box; border: 2px solid #111; outline: 1px solid white;
       font-size: 11px; line-height: 1; color: white; }
.box span { background: #111; padding: 0 2px; }
.bar { width: 256px; height: 12px; border: 1px solid #999;
       background: linear-gradient(to right, rgb(33, 102, 172), white, rgb(178, 24, 43)); }
.ends { width: 258px; display: flex; justify-content: space-between; font-size: 0.8em; }
#verdict { font-size: 1.6em; margin: 0.6em 0 0.2em; } .error { color: #b2182b; }
#numbers { font-variant-numeric: tabular-nums; }
[hidden] { display: none !important; }
</style>
</head>
<body>
<h1 id="heading">Why did it say cat or non-cat?</h1>
<p id="model">loading the model...</p>
<div id="drop">Drop a photo here, or <input type="file" id="file" accept="image/*"></div>
<p><label for="threshold" id="threshold-label">call it <span class="class1">cat</span> when p is above</label>
<output id="threshold-value"></output> <input type="range" id="threshold" min="0" max="1" step="any"></p>
<p id="status" data-state="idle">No photo yet.</p>
<section id="result" hidden>
<p id="verdict"><span id="name"></span>: <strong id="label"></strong>
(p = <output id="probability"></output>)</p>
<p id="numbers">z = <output id="z"></output> = b (<output id="bias"></output>)
+ the sum of the pixels' contributions (<output id="sum"></output>)</p>
<div class="row">
<figure><img class="pixels" id="input" alt="the image as the neuron saw it">
<figcaption>The image as the neuron saw it (the model's size, after the loader's resizing).</figcaption></figure>
<figure><div class="map"><img class="pixels" id="contributions" alt="each pixel's contribution"><div id="overlay"></div></div>
<div class="bar"></div><div class="ends"><span id="low"></span><span>0</span><span id="high"></span></div>
<figcaption>Each pixel's contribution w&middot;x (summed over red, green and blue): red pushes towards
<span class="class1"></span>, blue towards <span class="class0"></span>.</figcaption></figure>
<figure><img class="pixels" id="weights" alt="the weights as an image">
<figcaption>The weights w, each colour channel on its own: mid-grey is 0, brighter pushes a bright pixel
towards <span class="class1"></span>, darker towards <span class="class0"></span>.</figcaption></figure>
</div>
<p>The 8&times;8 regions that weigh most, numbered as their boxes on the contribution map:</p>
<ol id="cells"></ol>
</section>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let model = null, last = null;

function status(text, state) {
  $("status").textContent = text;
  $("status").dataset.state = state;
  $("status").className = state === "error" ? "error" : "";
}

function relabel() {
  const t = Number($("threshold").value);
  $("threshold-value").textContent = t.toFixed(2);
  if (!last) return;
  const label = last.classes[last.probability > t ? 1 : 0];
  $("label").textContent = label;
  $("heading").textContent = document.title = `Why did it say ${label}?`;  // the question follows the answer
}

function names(classes) {
  for (const [k, name] of classes.entries())
    for (const span of document.querySelectorAll(".class" + k)) span.textContent = name;
}

// a numbered box on the contribution map per region, placed in % of the model's image (h, w)
function boxes(cells) {
  const [h, w] = model.image_shape;
  $("overlay").replaceChildren();
  cells.forEach((c, k) => {
    const box = document.createElement("div"), number = document.createElement("span");
    box.className = "box";
    box.id = `box-${k + 1}`;
    Object.assign(box.dataset, {top: c.top, left: c.left, height: c.height, width: c.width});
    Object.assign(box.style, {top: `${100 * c.top / h}%`, left: `${100 * c.left / w}%`,
                              height: `${100 * c.height / h}%`, width: `${100 * c.width / w}%`});
    number.textContent = String(k + 1);
    box.append(number);
    $("overlay").append(box);
  });
}

function show(result) {
  last = result;
  $("name").textContent = result.path;
  $("probability").textContent = result.probability.toFixed(3);
  $("probability").dataset.value = String(result.probability);
  $("z").textContent = result.z.toFixed(4);
  $("z").dataset.value = String(result.z);
  $("bias").textContent = result.bias.toFixed(4);
  $("sum").textContent = result.contributions_sum.toFixed(4);
  $("sum").dataset.value = String(result.contributions_sum);
  for (const key of ["input", "contributions", "weights"]) $(key).src = result.images[key];
  $("low").textContent = (-result.scale).toPrecision(3);
  $("high").textContent = "+" + result.scale.toPrecision(3);
  names(result.classes);
  boxes(result.top_cells);
  $("cells").replaceChildren(...result.top_cells.map((c) => {
    const li = document.createElement("li");
    li.textContent = `${c.contribution >= 0 ? "+" : ""}${c.contribution.toFixed(3)} ` +
                     (c.towards === null ? "(neither class)" : `towards ${c.towards}`) +
                     ` (rows ${c.top}-${c.top + c.height - 1}, columns ${c.left}-${c.left + c.width - 1})`;
    return li;
  }));
  $("result").hidden = false;
  relabel();
}

// the one upload path: the file input, a drop and the demo all come here
async function send(blob, name) {
  status(`reading ${name}...`, "busy");
  try {
    const response = await fetch("/predict", {method: "POST", body: blob,
                                              headers: {"X-File-Name": encodeURIComponent(name)}});
    const result = await response.json();
    if (!response.ok) {
      $("result").hidden = true;
      last = null;
      return status(`error: ${result.error}`, "error");
    }
    show(result);
    status(`${name}: done`, "done");
  } catch (e) {
    status(`error: ${e}`, "error");
  }
}

async function start() {
  model = await (await fetch("/model")).json();
  $("model").textContent = `model: ${model.run || model.model}, images of ${model.image_shape.join("x")}, ` +
                           `classes ${model.classes.join(" / ")}` + (model.trained ? `, trained ${model.trained}` : "");
  $("threshold").value = params.get("threshold") || model.threshold;
  names(model.classes);
  $("heading").textContent = `Why does it say ${model.classes[1]} or ${model.classes[0]}?`;
  relabel();
  if (params.get("demo")) {
    const example = await fetch("/example.png");
    await send(await example.blob(), "example.png");
  }
}

$("threshold").addEventListener("input", relabel);
$("file").addEventListener("change", () => { if ($("file").files.length) send($("file").files[0], $("file").files[0].name); });
$("drop").addEventListener("dragover", (e) => { e.preventDefault(); $("drop").className = "over"; });
$("drop").addEventListener("dragleave", () => { $("drop").className = ""; });
$("drop").addEventListener("drop", (e) => {
  e.preventDefault();
  $("drop").className = "";
  if (e.dataTransfer.files.length) send(e.dataTransfer.files[0], e.dataTransfer.files[0].name);
});
start().catch((e) => status(`error: ${e}`, "error"));
</script>
</body>
</html>
"""

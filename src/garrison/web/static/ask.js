/* The Ask page's streamed answers.
 *
 * A form with a data-stream address posts there instead (the same fields and CSRF token) and
 * renders the server-sent events as they arrive: the marking first (the page's banners and the
 * answer's own banners are set before any text is on the page), then the question, each
 * sentence, each citation, and the end of the answer. Without scripts, or where the browser
 * cannot read a response as a stream, the form posts as a plain form and the server renders the
 * whole page. Every text from the server is set as text (textContent), never as markup; the only
 * link made is the server's own link to the document viewer.
 */
(function () {
  "use strict";

  var PREFIX = "/ui";
  var DOC_LINK = PREFIX + "/documents/";
  var CLASS_NAME = /^[a-z0-9-]+$/;

  if (!window.fetch || !window.ReadableStream || !window.TextDecoder || !window.URLSearchParams) {
    return; // the plain form post stays
  }

  function node(tag, className, text) {
    var el = document.createElement(tag);
    if (className) {
      el.className = className;
    }
    if (text !== undefined && text !== null) {
      el.textContent = String(text);
    }
    return el;
  }

  function portionMark(portion) {
    var span = node("span", "portion", portion);
    span.title = "Portion marking";
    return span;
  }

  function bannerClass(name) {
    return typeof name === "string" && CLASS_NAME.test(name) ? name : "";
  }

  function setPageBanner(marking, className) {
    ["banner-top", "banner-bottom"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) {
        el.className = "banner " + bannerClass(className);
        el.textContent = marking;
      }
    });
    var title = document.title;
    var cut = title.indexOf(" · ");
    document.title = marking + (cut >= 0 ? title.slice(cut) : "");
  }

  function answerBanner(marking, className) {
    var el = node("div", "answer-banner " + bannerClass(className), marking);
    el.setAttribute("role", "note");
    el.setAttribute("aria-label", "Classification of this answer");
    return el;
  }

  function errorBox(form) {
    var box = document.getElementById("ask-stream-error");
    if (!box) {
      box = node("p", "error");
      box.id = "ask-stream-error";
      box.setAttribute("role", "alert");
      form.parentNode.insertBefore(box, form.nextSibling);
    }
    return box;
  }

  function clearErrors(form) {
    var shown = document.querySelectorAll("main p.error");
    for (var i = 0; i < shown.length; i++) {
      shown[i].parentNode.removeChild(shown[i]);
    }
  }

  function showError(form, message) {
    errorBox(form).textContent = message;
  }

  /* One answer as it is built from the events. */
  function Answer(live, form) {
    this.live = live;
    this.form = form;
    this.article = null;
  }

  Answer.prototype.marking = function (data) {
    // The banners first: nothing of the answer is on the page before they are right.
    setPageBanner(String(data.page_marking), data.page_banner_class);
    var anchor = String(data.anchor);
    var section = node("section");
    var heading = node("h2");
    heading.id = anchor + "-heading";
    section.setAttribute("aria-labelledby", heading.id);
    if (this.live.getAttribute("data-mode") === "append") {
      var turns = parseInt(this.live.getAttribute("data-turns") || "0", 10) + 1;
      this.live.setAttribute("data-turns", String(turns));
      heading.textContent = "Question " + turns;
      var latest = document.getElementById("latest");
      if (latest) {
        latest.removeAttribute("id");
      }
      section.id = "latest";
    } else {
      // A one-off answer replaces the one shown before (the banner is this answer's alone).
      var old = document.querySelectorAll("main .answer-section");
      for (var i = 0; i < old.length; i++) {
        old[i].parentNode.removeChild(old[i]);
      }
      while (this.live.firstChild) {
        this.live.removeChild(this.live.firstChild);
      }
      heading.textContent = "Answer";
      section.className = "answer-section";
    }
    section.appendChild(heading);
    var article = node("article", "answer");
    article.id = anchor;
    article.setAttribute("aria-label", "Answer");
    article.setAttribute("aria-busy", "true");
    article.appendChild(answerBanner(String(data.marking), data.banner_class));
    this.text = node("div", "answer-text");
    this.citations = null;
    this.footer = node("p", "help", "Answering…");
    article.appendChild(this.text);
    article.appendChild(this.footer);
    article.appendChild(answerBanner(String(data.marking), data.banner_class));
    section.appendChild(article);
    this.live.appendChild(section);
    this.article = article;
    this.anchor = anchor;
  };

  Answer.prototype.question = function (data) {
    if (!data.text) {
      return;
    }
    var p = node("p", "asked");
    if (data.portion) {
      p.appendChild(portionMark(data.portion));
      p.appendChild(document.createTextNode(" "));
    }
    p.appendChild(node("span", "asked-label", "Question:"));
    p.appendChild(document.createTextNode(" " + String(data.text)));
    this.article.insertBefore(p, this.text);
  };

  Answer.prototype.sentence = function (data) {
    var p = node("p", "answer-sentence" + (data.unsupported ? " unsupported" : ""));
    if (data.portion) {
      p.appendChild(portionMark(data.portion));
    }
    p.appendChild(document.createTextNode(" " + String(data.text)));
    var anchor = this.anchor;
    (data.citations || []).forEach(function (n) {
      var number = parseInt(n, 10);
      var ref = node("a", "cite-ref", "[" + number + "]");
      ref.href = "#" + anchor + "-c" + number;
      ref.setAttribute("aria-label", "Citation " + number);
      p.appendChild(document.createTextNode(" "));
      p.appendChild(ref);
    });
    if (data.unsupported) {
      var flag = node("strong", "flag-unsupported", "[unsupported]");
      flag.title = "No source in the context supports this sentence";
      p.appendChild(document.createTextNode(" "));
      p.appendChild(flag);
    }
    this.text.appendChild(p);
  };

  Answer.prototype.citation = function (data) {
    if (!this.citations) {
      this.article.insertBefore(node("h3", null, "Citations"), this.footer);
      this.citations = node("ol", "citations");
      this.article.insertBefore(this.citations, this.footer);
    }
    var number = parseInt(data.n, 10);
    var li = node("li");
    li.id = this.anchor + "-c" + number;
    li.value = number;
    var quote = node("blockquote", "quote");
    if (data.portion) {
      quote.appendChild(portionMark(data.portion));
    }
    quote.appendChild(document.createTextNode(" " + String(data.quote)));
    li.appendChild(quote);
    var link = typeof data.link === "string" ? data.link : "";
    if (link.indexOf(DOC_LINK) === 0 && link.indexOf("//") < 0) {
      var meta = node("p", "hit-meta");
      var a = node("a", null, "Open the cited portion");
      a.href = link;
      meta.appendChild(a);
      if (data.where) {
        meta.appendChild(document.createTextNode(" · " + String(data.where)));
      }
      if (data.section) {
        meta.appendChild(document.createTextNode(" · " + String(data.section)));
      }
      li.appendChild(meta);
    }
    this.citations.appendChild(li);
  };

  Answer.prototype.done = function (data) {
    var article = this.article;
    if (data.refused) {
      this.text.className += " refused";
    }
    (data.notes || []).forEach(function (note) {
      this.text.appendChild(node("p", "help", note));
    }, this);
    this.footer.textContent = "Answered by " + String(data.generator) + ".";
    var url = typeof data.conversation_url === "string" ? data.conversation_url : "";
    var marking = document.getElementById("conversation-marking");
    if (marking && data.conversation_marking) {
      marking.textContent = String(data.conversation_marking);
    }
    if (url.indexOf(PREFIX + "/ask/conversations/") === 0 && this.live.getAttribute("data-mode") !== "append") {
      var kept = node("p", "help", "Kept in a conversation: ");
      var a = node("a", null, "continue it");
      a.href = url;
      kept.appendChild(a);
      article.insertBefore(kept, this.footer.nextSibling);
    }
    article.setAttribute("aria-busy", "false");
  };

  /* Split "event: NAME\ndata: JSON" blocks off the front of buffer. */
  function takeEvents(buffer, handle) {
    var end = buffer.indexOf("\n\n");
    while (end >= 0) {
      var block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      var name = "message";
      var data = [];
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) {
          name = line.slice(6).trim();
        } else if (line.indexOf("data:") === 0) {
          data.push(line.slice(5).replace(/^ /, ""));
        }
      });
      if (data.length) {
        handle(name, JSON.parse(data.join("\n")));
      }
      end = buffer.indexOf("\n\n");
    }
    return buffer;
  }

  function failure(status) {
    if (status === 404) {
      return "There is nothing here that you can open.";
    }
    if (status === 403) {
      return "The form was not sent by this session, or this is not permitted. Reload the page and try again.";
    }
    return "The answer could not be shown (HTTP status " + status + "). Reload the page and try again.";
  }

  function ask(form, live) {
    var button = form.querySelector("button[type=submit]");
    var body = new URLSearchParams(new FormData(form));
    var answer = new Answer(live, form);
    var started = false;
    var finished = false;
    clearErrors(form);
    if (button) {
      button.disabled = true;
    }
    form.setAttribute("aria-busy", "true");

    function handle(name, data) {
      if (name === "marking") {
        started = true;
        answer.marking(data);
      } else if (name === "error") {
        showError(form, String(data.message));
      } else if (started && name === "question") {
        answer.question(data);
      } else if (started && name === "sentence") {
        answer.sentence(data);
      } else if (started && name === "citation") {
        answer.citation(data);
      } else if (started && name === "done") {
        finished = true;
        answer.done(data);
        if (live.getAttribute("data-mode") === "append") {
          var box = form.querySelector("textarea[name=question]");
          if (box) {
            box.value = "";
          }
        }
      }
    }

    function finish() {
      if (button) {
        button.disabled = false;
      }
      form.removeAttribute("aria-busy");
    }

    fetch(form.getAttribute("data-stream"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "text/event-stream" },
    })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("text/event-stream") !== 0) {
          if (response.ok && response.redirected && response.url.indexOf(location.origin + PREFIX + "/") === 0) {
            location.assign(response.url); // signed out meanwhile: the sign-in page
            return null;
          }
          showError(form, failure(response.status));
          return null;
        }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) {
              buffer = takeEvents(buffer + decoder.decode() + "\n\n", handle);
              if (started && !finished) {
                showError(form, "The answer was cut off before its end. Ask again.");
              }
              return null;
            }
            buffer = takeEvents(buffer + decoder.decode(chunk.value, { stream: true }), handle);
            return pump();
          });
        }
        return pump();
      })
      .catch(function () {
        showError(form, "The answer could not be received. Reload the page and try again.");
      })
      .then(finish);
  }

  var live = document.getElementById("ask-live");
  var forms = document.querySelectorAll("form[data-stream]");
  if (!live) {
    return;
  }
  for (var i = 0; i < forms.length; i++) {
    (function (form) {
      form.addEventListener("submit", function (event) {
        if (form.getAttribute("aria-busy") === "true") {
          event.preventDefault();
          return;
        }
        event.preventDefault();
        ask(form, live);
      });
    })(forms[i]);
  }
})();

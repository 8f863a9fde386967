"""Generated web pages with a known main text: what a crawl's HTML looks like to the extractor
(navigation, sidebars, cookie banners, comments, scripts and footers around the article), so the
extraction can be measured against the text it should return."""

from __future__ import annotations

import html
import random
from dataclasses import dataclass

NAV = ("Home", "News", "Products", "Pricing", "Blog", "Careers", "About us", "Contact", "Support", "Log in",
       "Sign up", "Community", "Events", "Partners", "Documentation")
SIDEBAR = ("Most read this week", "Related articles", "Trending now", "You may also like", "Editor's picks")
TEASERS = ("Ten tips for a faster laptop", "Why the market fell on Tuesday", "A guide to winter gardening",
           "The best budget headphones of the year", "How to bake sourdough at home", "What the new law means",
           "Interview: the founder who started in a garage", "Five cities to visit this spring")
FOOTER = ("Privacy policy", "Terms of use", "Cookie settings", "Accessibility", "Sitemap", "Advertise with us")
COMMENTS = ("Great article, thanks for sharing!", "I disagree with the second point.", "Does this work on Windows?",
            "Bookmarked for later.", "Finally someone explains this properly.")


@dataclass(frozen=True)
class Page:
    url: str
    html: str
    main_text: str  # the article: what an extractor should return


def html_page(rng: random.Random, url: str, title: str, paragraphs: list[str]) -> Page:
    e = html.escape
    nav = "".join(f'<li><a href="/{i}">{e(n)}</a></li>' for i, n in enumerate(rng.sample(NAV, 8)))
    side = "".join(f'<li><a href="/t/{i}">{e(t)}</a></li>' for i, t in enumerate(rng.sample(TEASERS, 5)))
    foot = " | ".join(f'<a href="/f/{i}">{e(f)}</a>' for i, f in enumerate(FOOTER))
    comments = "".join(f'<div class="comment"><b>user{rng.randint(1, 999)}</b><p>{e(c)}</p></div>'
                       for c in rng.sample(COMMENTS, 3))
    body = "".join(f"<p>{e(p)}</p>" for p in paragraphs)
    page = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)} | Example</title>
<style>body{{font-family:sans-serif}} .nav li{{display:inline}}</style>
<script>window.dataLayer=window.dataLayer||[];function gtag(){{dataLayer.push(arguments)}}</script></head>
<body><div id="cookie-banner">We use cookies to improve your experience. <button>Accept all</button></div>
<header><div class="logo">Example Media</div><nav><ul class="nav">{nav}</ul></nav></header>
<div class="container"><aside class="sidebar"><h3>{e(rng.choice(SIDEBAR))}</h3><ul>{side}</ul></aside>
<article><h1>{e(title)}</h1><div class="byline">By Staff Writer, {rng.randint(1, 28)} March 2026</div>
{body}</article>
<section class="comments"><h3>{rng.randint(3, 40)} comments</h3>{comments}</section></div>
<footer><p>{foot}</p><p>&copy; 2026 Example Media Ltd. All rights reserved.</p></footer>
<script>gtag('config','UA-000000-1');</script></body></html>"""
    return Page(url, page, "\n\n".join([title, *paragraphs]))


def pages_from_texts(texts: list[tuple[str, str]], seed: int = 0) -> list[Page]:
    """One page per (title, text); the text's blank-line-separated blocks become paragraphs."""
    rng = random.Random(seed)
    out = []
    for i, (title, text) in enumerate(texts):
        paragraphs = [" ".join(b.split()) for b in text.split("\n\n") if b.strip()]
        out.append(html_page(rng, f"https://example.org/{i}/{title.replace(' ', '-')}", title, paragraphs))
    return out

//! A browser for the API tests: a cookie jar, redirects left to the test, forms read from the
//! HTML (hidden fields included) and submitted the way a browser submits them.

use std::collections::BTreeMap;

/// One page or redirect as the browser got it.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The target of a 303.
    pub fn location(&self) -> url::Url {
        assert_eq!(self.status, 303, "not a redirect: {}", self.html);
        url::Url::parse(self.header("location")).expect("an absolute Location")
    }

    /// The query parameters of the 303's target.
    pub fn redirect_params(&self) -> BTreeMap<String, String> {
        self.location().query_pairs().into_owned().collect()
    }

    /// The forms of the page, in order. (`tl` misreads an attribute that follows a bare one,
    /// as in `required value="x"`; the templates put valued attributes first.)
    pub fn forms(&self) -> Vec<Form> {
        let dom = tl::parse(&self.html, tl::ParserOptions::default()).expect("HTML");
        let parser = dom.parser();
        let attr = |tag: &tl::HTMLTag, name: &str| {
            tag.attributes()
                .get(name)
                .flatten()
                .map(|v| decode(&v.as_utf8_str()))
        };
        dom.query_selector("form")
            .expect("selector")
            .filter_map(|handle| handle.get(parser)?.as_tag().cloned())
            .map(|form| {
                let mut fields = Vec::new();
                let mut buttons = Vec::new();
                for input in form.query_selector(parser, "input").into_iter().flatten() {
                    let tag = input.get(parser).unwrap().as_tag().unwrap();
                    let name = attr(tag, "name").unwrap_or_default();
                    let kind = attr(tag, "type").unwrap_or_else(|| "text".into());
                    fields.push(Field {
                        name,
                        kind,
                        value: attr(tag, "value").unwrap_or_default(),
                    });
                }
                for button in form.query_selector(parser, "button").into_iter().flatten() {
                    let tag = button.get(parser).unwrap().as_tag().unwrap();
                    if let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value")) {
                        buttons.push((name, value));
                    }
                }
                Form {
                    action: attr(&form, "action").unwrap_or_default(),
                    method: attr(&form, "method").unwrap_or_default(),
                    fields,
                    buttons,
                }
            })
            .collect()
    }

    /// The page's only form.
    pub fn form(&self) -> Form {
        let mut forms = self.forms();
        assert_eq!(forms.len(), 1, "{}", self.html);
        forms.remove(0)
    }
}

/// The character references an HTML serializer writes (`&#NN;`, `&#xNN;`, `&amp;` and kin).
fn decode(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';') else {
            rest = tail;
            break;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub struct Field {
    pub name: String,
    pub kind: String,
    pub value: String,
}

pub struct Form {
    pub action: String,
    pub method: String,
    pub fields: Vec<Field>,
    /// Named submit buttons: (name, value).
    pub buttons: Vec<(String, String)>,
}

impl Form {
    /// The value of a field the form carries.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }

    /// The names of the fields a person sees (not hidden).
    pub fn visible(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|f| f.kind != "hidden")
            .map(|f| f.name.as_str())
            .collect()
    }

    /// The fields as submitted with `filled` typed in (a filled name replaces the field's value),
    /// without the field `dropped`.
    pub fn values(&self, filled: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut values: Vec<(String, String)> = self
            .fields
            .iter()
            .map(|f| {
                let typed = filled.iter().find(|(n, _)| *n == f.name);
                (
                    f.name.clone(),
                    typed.map_or(f.value.clone(), |(_, v)| (*v).to_owned()),
                )
            })
            .collect();
        for (name, value) in filled {
            if !values.iter().any(|(n, _)| n == name) {
                values.push(((*name).to_owned(), (*value).to_owned()));
            }
        }
        values
    }
}

/// A browser: cookies kept per name (one host), no automatic redirects, and the headers a
/// browser sends on a same-origin form post.
pub struct Browser {
    http: reqwest::Client,
    origin: String,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(origin: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            origin: origin.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for set in response.headers().get_all("set-cookie") {
            let cookie = cookie::Cookie::parse(set.to_str().unwrap().to_owned()).unwrap();
            let removed =
                cookie.max_age().is_some_and(|age| age.is_zero()) || cookie.value().is_empty();
            if removed {
                self.cookies.remove(cookie.name());
            } else {
                self.cookies
                    .insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            html: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .header("sec-fetch-site", "none")
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// Posts `values` to `path` from one of our pages.
    pub async fn post(&mut self, path: &str, values: &[(String, String)]) -> Page {
        let response = self
            .http
            .post(format!("{}{path}", self.origin))
            .header("cookie", self.cookie_header())
            // What Chromium sends from a page with `Referrer-Policy: no-referrer`.
            .header("origin", "null")
            .header("sec-fetch-site", "same-origin")
            .form(values)
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// Submits `form` with `filled` typed in.
    pub async fn submit(&mut self, form: &Form, filled: &[(&str, &str)]) -> Page {
        assert_eq!(form.method, "post");
        self.post(&form.action, &form.values(filled)).await
    }
}

#[test]
fn references_decode() {
    assert_eq!(decode("a&#38;b&#60;&#x3e;&quot;&amp;"), "a&b<>\"&");
    assert_eq!(decode("no & entity"), "no & entity");
}

//! API tests: the real server on 127.0.0.1:0, each test on a fresh PostgreSQL database and on a
//! fresh SQLite file (see `helpers`).

mod browser;
mod helpers;

mod admin;
mod authorization_code;
mod batching;
mod browser_flow;
mod guards;
mod hygiene;
mod keys;
mod operations;
mod real_browser;
mod refresh;
mod revoke;
mod roles;
mod status_list;
mod storage;
mod store_contract;
mod throttle;
mod token;
mod verifier;

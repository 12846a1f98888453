//! The style sheet and the little JavaScript of the live parts, compiled into the binary so
//! the pages need nothing from outside (they work offline).

/// Served at `/static/osbs.css`.
pub const CSS: &str = r#"
:root{--fg:#1d2430;--muted:#5b6473;--line:#d8dde5;--bg:#fff;--head:#f3f5f8;--link:#0b5cad;
--waiting:#6b7280;--active:#1d6fd6;--good:#17803d;--bad:#c0262d;--neutral:#8a6d1f}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#22303f;color:#fff;padding:.6rem 1rem;display:flex;gap:1.2rem;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none}header .brand{font-weight:700}
header a.here{text-decoration:underline}
main{padding:1rem;max-width:1200px;margin:auto}
a{color:var(--link)}
h1{font-size:1.3rem;margin:.2rem 0 1rem;word-break:break-all}
h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--head);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;padding:.05rem .5rem;border-radius:1rem;color:#fff;font-size:.85rem;font-weight:600;white-space:nowrap}
.state::before{content:"";display:inline-block;width:.5rem;height:.5rem;border-radius:50%;background:#fff;margin-right:.35rem;vertical-align:middle}
.waiting{background:var(--waiting)}.active{background:var(--active)}.good{background:var(--good)}
.bad{background:var(--bad)}.neutral{background:var(--neutral)}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:.8rem}
form.filters label{display:flex;flex-direction:column;font-size:.8rem;color:var(--muted)}
input,select,button{font:inherit;padding:.3rem .4rem;border:1px solid var(--line);border-radius:4px;background:#fff;color:var(--fg)}
button{cursor:pointer;background:var(--head)}
.count{color:var(--muted);margin:.3rem 0}
nav.pages{display:flex;gap:1rem;margin:.8rem 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;word-break:break-all}
.copy{display:flex;gap:.3rem;margin:.2rem 0}.copy input{flex:1;min-width:0;font-family:ui-monospace,monospace;font-size:.85rem}
.error{border-left:4px solid var(--bad);background:#fdf1f1;padding:.5rem .8rem;white-space:pre-wrap;word-break:break-word}
.bars{display:grid;grid-template-columns:max-content 1fr max-content;gap:.25rem .6rem;align-items:center}
.bar{height:.8rem;background:var(--active);border-radius:2px}
pre.log{background:#10161e;color:#d7dde6;padding:.6rem;overflow:auto;max-height:70vh;font-size:.82rem;line-height:1.35;margin:0;white-space:pre-wrap;word-break:break-all}
.logbar{display:flex;justify-content:space-between;gap:1rem;flex-wrap:wrap;margin:.3rem 0;color:var(--muted)}
.muted{color:var(--muted)}
@media (max-width:720px){
 table.builds thead{display:none}
 table.builds tr{display:block;border:1px solid var(--line);border-radius:6px;margin:.5rem 0;padding:.3rem}
 table.builds td{display:flex;justify-content:space-between;gap:1rem;border:0;padding:.2rem .3rem}
 table.builds td::before{content:attr(data-label);color:var(--muted)}
 dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.4rem}
 .wide{display:none}
}
"#;

/// Served at `/static/osbs.js`: the builds table refreshed without reload, the live log over
/// Server-Sent Events, the queues refreshed, copy buttons. Pages read fine without it.
pub const JS: &str = r#"
"use strict";
function refresh(id, every){
  const el=document.getElementById(id); if(!el||!el.dataset.fragment) return;
  setInterval(async()=>{
    try{ const r=await fetch(el.dataset.fragment,{cache:"no-store"}); if(!r.ok) return;
      const html=await r.text(); if(html!==el.innerHTML) el.innerHTML=html;
      const total=r.headers.get("x-total"), count=document.getElementById("total");
      if(total!==null&&count) count.textContent=total;
    }catch(e){}
  }, every);
}
function follow(){
  const log=document.getElementById("log"); if(!log||!log.dataset.events) return;
  const status=document.getElementById("logstatus");
  const source=new EventSource(log.dataset.events);
  source.addEventListener("line",e=>{
    const atBottom=log.scrollHeight-log.scrollTop-log.clientHeight<40;
    log.appendChild(document.createTextNode(e.data+"\n"));
    if(atBottom) log.scrollTop=log.scrollHeight;
  });
  source.addEventListener("end",async e=>{
    source.close(); if(status) status.textContent="build ended: "+e.data;
    try{ const r=await fetch(location.href,{cache:"no-store"});
      const doc=new DOMParser().parseFromString(await r.text(),"text/html");
      const fresh=doc.getElementById("details"), old=document.getElementById("details");
      if(fresh&&old) old.replaceWith(fresh);
    }catch(err){}
  });
  source.onerror=()=>{ if(status&&source.readyState===EventSource.CONNECTING) status.textContent="reconnecting…"; };
  source.onopen=()=>{ if(status) status.textContent="following live"; };
}
document.addEventListener("click",e=>{
  const b=e.target.closest("button[data-copy]"); if(!b) return;
  const input=document.getElementById(b.dataset.copy); input.select();
  (navigator.clipboard?navigator.clipboard.writeText(input.value):Promise.reject()).then(
    ()=>{b.textContent="copied";}, ()=>{document.execCommand("copy"); b.textContent="copied";});
});
refresh("rows",3000); refresh("queues",3000); follow();
"#;

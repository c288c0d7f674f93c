// The demo shop's own script: the cart. `window.demoShop.addToCart` is what
// the browser test calls to change the page from the page's own script.
(() => {
  const cart = document.getElementById("cart");
  const empty = document.getElementById("cart-empty");
  function addToCart(label) {
    const li = document.createElement("li");
    li.textContent = label;
    cart.append(li);
    empty.hidden = true;
    return li;
  }
  for (const button of document.querySelectorAll("button.add")) {
    button.addEventListener("click", () => addToCart(button.dataset.item));
  }
  document.getElementById("checkout").addEventListener("submit", (e) => e.preventDefault());
  window.demoShop = { addToCart };
})();
